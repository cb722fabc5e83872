// The statuses a reply can have, as the server saves them: mirrors `ReplyStatus` in
// `streamdesk/store/records.py`, and a test keeps the two equal.
export const STATUS = Object.freeze({ STREAMING: "streaming", COMPLETE: "complete", CANCELLED: "cancelled", ERROR: "error", INTERRUPTED: "interrupted" });
