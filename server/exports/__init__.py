"""What leaves the system as a file: minutes (PDF, DOCX, HTML, built from one notice layout) and
attendance (CSV, XLSX)."""
