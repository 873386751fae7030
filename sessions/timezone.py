"""The one time zone the system shows: times are stored in UTC and shown in Vietnam's time."""

from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
