// One reply: POST /chat, apply its events to the reply's view, and time it.
//
// Time to first token runs from sending to the first delta (reasoning counts: the model has
// started). Tokens per second divide the completion tokens (from usage, else estimated from the
// text) by the time between the first and the last delta.

import { ApiError, streamChat } from "./api.js";
import { estimateTokens } from "./messages.js";

// Errors after which the server saves the reply as interrupted rather than failed.
const INTERRUPTIONS = new Set(["interrupted", "server_stopping"]);

/**
 * Stream one reply into `reply` (an AssistantMessage). Resolves with the final status once the
 * stream ends. Throws ApiError when the server refused the request before streaming: nothing
 * was saved then.
 */
export async function streamReply({ payload, reply, signal, onMeta }) {
  const sent = performance.now();
  let first = null;
  let last = null;
  let usage = null;
  let error = null;
  let finishReason = null;
  let meta = null;
  let status;
  try {
    for await (const { event, data } of streamChat(payload, signal)) {
      if (event === "meta") {
        meta = data;
        onMeta(data);
      } else if (event === "delta") {
        last = performance.now();
        first ??= last;
        if (data.reasoning) reply.appendReasoning(data.reasoning);
        if (data.text) reply.appendText(data.text);
      } else if (event === "usage") {
        usage = data;
      } else if (event === "error") {
        error = data;
      } else if (event === "done") {
        finishReason = data.finish_reason;
      }
    }
    if (error) status = INTERRUPTIONS.has(error.code) ? "interrupted" : "error";
    else status = finishReason === null ? "interrupted" : "complete";
  } catch (failure) {
    if (failure instanceof ApiError && !meta) throw failure;
    if (failure.name === "AbortError") {
      status = "cancelled";
    } else {
      status = "error";
      error = { code: "network", message: failure.message };
    }
  }
  reply.setStatus(status, { error, finishReason });
  const tokens = usage?.completion_tokens || estimateTokens(reply.text + reply.reasoningText);
  const seconds = first !== null && last > first ? (last - first) / 1000 : null;
  reply.setStats({
    tokens: first !== null ? tokens : 0,
    estimated: !usage?.completion_tokens,
    firstTokenSeconds: first !== null ? (first - sent) / 1000 : null,
    tokensPerSecond: seconds ? tokens / seconds : null,
    omitted: meta?.omitted_messages || 0,
  });
  return status;
}
