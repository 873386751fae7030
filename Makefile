# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LEGACY_WHEEL_DIR := var/cache

.PHONY: demo test lint install clean bench serve fonts gstreamer netns-tools
GSTREAMER_PACKAGES := gstreamer1.0-tools gstreamer1.0-plugins-bad gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-libav python3-gst-1.0 gir1.2-gst-plugins-bad-1.0

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[units,test]'
	touch $(STAMP)

# The relay's send path in C (bridge/native/rtp_send.c; without a C compiler the bridge sends from Python)
NATIVE := $(VENV)/.native
$(NATIVE): $(STAMP) bridge/native/rtp_send.c bridge/native_send.py
	$(BIN)/python -m bridge.native_send
	touch $(NATIVE)

install: $(STAMP) $(NATIVE)

# Minutes PDFs embed a serif font with Vietnamese letters (Liberation Serif 2 or DejaVu Serif).
fonts: $(STAMP)
	@$(BIN)/python -c "from server.exports.fonts import find_serif_font; find_serif_font()" 2>/dev/null || \
	  (echo "Cài phông chữ tiếng Việt cho biên bản PDF (fonts-liberation2)…" && \
	   (apt-get install -y -qq fonts-liberation2 fonts-dejavu-core >/dev/null 2>&1 || \
	    (apt-get update -qq && apt-get install -y -qq fonts-liberation2 fonts-dejavu-core >/dev/null 2>&1)) || \
	   echo "Không cài được phông: biên bản vẫn xem được dạng HTML và DOCX; PDF cần fonts-liberation2.")

# tests/test_gstreamer.py drives GStreamer's webrtcbin (a third-party WebRTC stack) from Debian's Python;
# without it that test skips locally (and fails in CI, where .ci/run installs it).
gstreamer:
	@(gst-inspect-1.0 webrtcbin >/dev/null 2>&1 && /usr/bin/python3 -c "import gi" 2>/dev/null) || \
	  (echo "Cài GStreamer (webrtcbin) cho kiểm thử tương thích…" && \
	   (apt-get install -y -qq $(GSTREAMER_PACKAGES) >/dev/null 2>&1 || \
	    (apt-get update -qq && apt-get install -y -qq $(GSTREAMER_PACKAGES) >/dev/null 2>&1)) || \
	   echo "Không cài được GStreamer: tests/test_gstreamer.py sẽ bỏ qua (CI thì báo lỗi).")

# tests/test_netns_link.py (and the weak-link media tests) shape a real link between network
# namespaces: iproute2's ip/tc and iptables (random loss); without them they skip (CI fails).
netns-tools:
	@command -v iptables >/dev/null 2>&1 || \
	  (echo "Cài iptables cho kiểm thử đường truyền yếu…" && \
	   (apt-get install -y -qq iproute2 iptables >/dev/null 2>&1 || \
	    (apt-get update -qq && apt-get install -y -qq iproute2 iptables >/dev/null 2>&1)) || \
	   echo "Không cài được iptables: kiểm thử đường truyền yếu sẽ bỏ qua (CI thì báo lỗi).")

demo: $(STAMP) $(NATIVE) fonts
	$(BIN)/hoinghi demo

serve: $(STAMP) $(NATIVE)
	$(BIN)/hoinghi serve

lint: $(STAMP)
	$(BIN)/ruff check server sessions bridge demo tests bench
	$(BIN)/mypy

test: $(STAMP) $(NATIVE) lint gstreamer netns-tools
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: $(STAMP) $(NATIVE)
	$(BIN)/python bench/units.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/kpi.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/audio.py
	$(BIN)/python bench/directives.py
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/recording.py
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python bench/weaklink.py; \
	  else echo "bench/weaklink.py: cần quyền root (network namespace, tc, iptables) — bỏ qua"; fi

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache bridge/_rtp_send*.so
