// The recordings page (issue #17): each recording's <video> plays its segments one after the other;
// a chapter (who had the floor, from when) seeks there — loading the segment that holds that moment.
// Times are seconds from the recording's start; a segment knows its offset and duration.

function segmentAt(segments, t) {
  let found = segments[0];
  for (const s of segments) if (s.offset <= t + 0.01) found = s;
  return found;
}

function mountOne(section, rec) {
  const video = section.querySelector("video");
  const segments = rec.segments || [];
  if (!video || !segments.length) return;
  let current = segments[0];
  const load = (segment, at, play) => {
    const seek = () => {
      video.currentTime = Math.max(0, at);
      if (play) video.play().catch(() => {});
    };
    if (current.id === segment.id && video.readyState >= 1) { seek(); return; }
    current = segment;
    video.addEventListener("loadedmetadata", seek, { once: true });
    video.src = segment.url;
    video.load();
  };
  video.addEventListener("ended", () => {
    const next = segments[segments.indexOf(current) + 1];
    if (next) load(next, 0, true);
  });
  for (const button of section.querySelectorAll("button.chapter")) {
    button.addEventListener("click", () => {
      const start = Number(button.dataset.start);
      const segment = segmentAt(segments, start);
      section.dataset.chapter = button.dataset.start;
      load(segment, start - segment.offset, true);
    });
  }
}

export function mountRecordings(boot) {
  for (const rec of boot.recordings || []) {
    const section = document.getElementById(`recording-${rec.id}`);
    if (section) mountOne(section, rec);
  }
}
