// Enter sends, Shift+Enter is a new line. While an input method is composing (Chinese,
// Japanese, Korean…), Enter picks a candidate and must never send: isComposing, and keyCode
// 229 for browsers that report the composition's last keydown only that way.

export const sendsOnEnter = (event) =>
  event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229;
