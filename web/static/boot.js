// Starts the page's script. The Content-Security-Policy runs scripts from /static/ only, never
// inline code, so a page names what to start, and with what, in a JSON block that is data, not
// script: <script type="application/json" id="page-boot">{"page": "chair", ...}</script>.
// base.html loads this module on every page; a page without the block starts nothing.

const byId = (id) => document.getElementById(id);

// The slide push control (issue #14), on the consoles that place <div id="slide-control">.
const slideControl = (meeting, role) => byId("slide-control") &&
  import("/static/slide_control.js").then(({ mountSlideControl }) => mountSlideControl(byId("slide-control"), meeting, role));

const STARTERS = {
  async chair({ meeting, root }) {
    const { chairConsole, conclusionsPanel } = await import("/static/chair.js");
    chairConsole(meeting, root);
    conclusionsPanel(meeting, root);
    slideControl(meeting, "chair");
  },
  async province({ meeting, unit }) {
    const { provinceConsole } = await import("/static/province.js");
    provinceConsole(meeting, unit);
    slideControl(meeting, "province");
  },
  async site({ meeting, unit_id: unitId, can_operate: canOperate }) {
    const [{ mountSlide }, { sitePage }] = await Promise.all([import("/static/slides.js"),
                                                              import("/static/site.js")]);
    mountSlide(byId("site-slide"), null, null, { meeting });
    sitePage(meeting, unitId, canOperate);
  },
  async meetings({ root }) {
    const { mountSchedulePickers } = await import("/static/pickers.js");
    mountSchedulePickers(root);
  },
  async slides() {
    const { mountSlide } = await import("/static/slides.js");
    mountSlide(byId("slide"), JSON.parse(byId("slide-data").textContent), byId("slide-status"));
  },
  async assignment() {
    const { mountAssignment } = await import("/static/directives.js");
    mountAssignment(document);
  },
  async recordings(data) {  // issue #17: a meeting's recordings, chapters that seek
    const { mountRecordings } = await import("/static/recordings.js");
    mountRecordings(data);
  },
  async board() {
    const { mountBoard } = await import("/static/directives.js");
    mountBoard(byId("directive-board"), byId("board-status"));
  },
};

const block = byId("page-boot");
if (block) {
  const { page, ...data } = JSON.parse(block.textContent);
  const start = STARTERS[page];
  if (!start) throw new Error(`page-boot: unknown page ${page}`);
  start(data);
}
