// Rendering a reply while it grows, without the cost growing with it.
//
// The raw markdown is kept, and rendered at most once per animation frame however many deltas
// arrived. A reply is cut into blocks at blank lines that are outside code fences and display
// math and followed by an unindented line: such a block can no longer change, so it is rendered
// once and left alone; each frame re-renders only the unfinished tail. A 20,000-token reply
// therefore costs about as much per frame as a short one. When text arrives faster than it can
// be rendered, finished blocks are rendered within a time budget per frame and the rest waits
// for the next frames, so the page never freezes. (Rendering blocks apart differs from
// rendering the whole text only for constructs spanning blank lines, like reference-style link
// definitions, which models rarely write.)

import { HIGHLIGHT_LIVE_LIMIT, renderMarkdown } from "./render.js";

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})\s*$/;
const FRAME_BUDGET_MS = 10;
// When a render took long, wait this many times its duration before the next one, so a very
// long tail (one huge code block) still leaves the page most of each second.
const BACKOFF = 2;

// One scheduler for every message on the page: a conversation opened with fifty long replies
// shares one frame budget instead of taking fifty.
const waiting = new Set();
let frame = 0;

function request(live) {
  waiting.add(live);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush(now) {
  frame = 0;
  const deadline = performance.now() + FRAME_BUDGET_MS;
  for (const live of [...waiting]) {
    if (performance.now() > deadline) break; // the rest next frame
    if (now < live.notBefore) continue;
    waiting.delete(live);
    live.render(deadline);
  }
  if (waiting.size && !frame) frame = requestAnimationFrame(flush);
}

export class LiveMarkdown {
  constructor(element, { onRender } = {}) {
    this.element = element;
    this.onRender = onRender;
    this.text = "";
    this.committed = 0; // text before this index is cut into finished blocks
    this.scanned = 0; // start of the first line not yet examined
    this.fence = null; // the open code fence {char, length}
    this.mathCloser = null; // "$$" or "\\]" while inside display math
    this.afterBlank = false;
    this.queue = []; // finished blocks not yet rendered (when text arrives faster than frames)
    this.final = false;
    this.notBefore = 0;
    this.rendered = new Promise((resolve) => { this.resolveRendered = resolve; });
    this.tail = document.createElement("div");
    this.tail.className = "md-block md-tail";
    element.replaceChildren(this.tail);
  }

  append(text) {
    this.text += text;
    request(this);
  }

  /** The text is complete: render the rest. Resolves once all of it is on the page. */
  finish() {
    this.final = true;
    request(this);
    return this.rendered;
  }

  /** Called by the scheduler, at most once per frame. */
  render(deadline) {
    const started = performance.now();
    this.queue.push(...this.completedBlocks());
    // However much arrived, spend about one frame's budget on finished blocks; the rest waits
    // for the next frame (the old tail stays meanwhile, so the order on screen holds).
    do {
      if (!this.queue.length) break;
      const element = document.createElement("div");
      element.className = "md-block";
      element.append(renderMarkdown(this.queue.shift()));
      this.tail.before(element);
    } while (performance.now() < deadline);
    if (this.queue.length) {
      this.onRender?.();
      request(this);
      return;
    }
    const tail = this.text.slice(this.committed);
    const highlight = this.final || !this.fence || tail.length < HIGHLIGHT_LIVE_LIMIT;
    this.tail.replaceChildren(renderMarkdown(tail, { highlight }));
    this.tail.classList.toggle("md-tail", !this.final);
    const took = performance.now() - started;
    this.notBefore = took > 8 ? performance.now() + took * BACKOFF : 0;
    this.onRender?.();
    if (this.final) this.resolveRendered();
  }

  /** Blocks finished since the last call, in order. Examines each complete line once. */
  completedBlocks() {
    const blocks = [];
    let start = this.scanned;
    for (let end = this.text.indexOf("\n", start); end !== -1; end = this.text.indexOf("\n", start)) {
      const line = this.text.slice(start, end);
      if (this.startsBlock(line) && start > this.committed) {
        blocks.push(this.text.slice(this.committed, start));
        this.committed = start;
      }
      start = end + 1;
    }
    this.scanned = start;
    return blocks;
  }

  /** Track fences and display math; true when `line` begins a new block after a blank line. */
  startsBlock(line) {
    if (this.fence) {
      const close = FENCE_CLOSE.exec(line);
      if (close && close[1][0] === this.fence.char && close[1].length >= this.fence.length) this.fence = null;
      return false;
    }
    if (this.mathCloser) {
      if (line.includes(this.mathCloser)) this.mathCloser = null;
      return false;
    }
    const blank = line.trim() === "";
    const begins = this.afterBlank && !blank && !/^[ \t]/.test(line);
    this.afterBlank = blank;
    const open = FENCE_OPEN.exec(line);
    if (open) {
      this.fence = { char: open[1][0], length: open[1].length };
    } else {
      const trimmed = line.trim();
      for (const [opener, closer] of [["$$", "$$"], ["\\[", "\\]"]]) {
        if (trimmed.startsWith(opener) && !trimmed.slice(2).includes(closer)) this.mathCloser = closer;
      }
    }
    return begins;
  }
}
