// Following a growing reply only while the reader is at the bottom (field notes 9). Scrolling
// up to read earlier text stops the following; "jump to latest" scrolls down and follows again.

const NEAR_BOTTOM_PX = 48;

export class AutoScroll {
  constructor(container, jumpButton) {
    this.container = container;
    this.jump = jumpButton;
    this.pinned = true;
    container.addEventListener("scroll", () => {
      this.pinned = this.atBottom();
      this.update();
    }, { passive: true });
    jumpButton.addEventListener("click", () => {
      this.toBottom();
      // The button hides itself: hand keyboard focus to the (focusable) message list.
      container.focus({ preventScroll: true });
    });
  }

  atBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.container;
    return scrollHeight - scrollTop - clientHeight <= NEAR_BOTTOM_PX;
  }

  /** Content grew: keep the bottom in view if the reader was there. */
  follow() {
    if (this.pinned) this.container.scrollTop = this.container.scrollHeight;
    this.update();
  }

  /** Scroll to the end and follow from now on (a new message, or the jump button). */
  toBottom() {
    this.pinned = true;
    this.container.scrollTop = this.container.scrollHeight;
    this.update();
  }

  update() {
    this.jump.hidden = this.pinned || this.atBottom();
  }
}
