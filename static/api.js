// The server's JSON API and the chat stream. No DOM here.
import { readEvents } from "./sse.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

async function errorFrom(response) {
  try {
    const { error } = await response.json();
    return new ApiError(response.status, error.code, error.message);
  } catch {
    return new ApiError(response.status, "http_error", `The server answered ${response.status}.`);
  }
}

export const getSession = () => request("GET", "/api/session");
export const enterAccessCode = (code) => request("POST", "/api/access", { code });
export const listModels = () => request("GET", "/api/models");
export const listConversations = () => request("GET", "/api/conversations");
export const getConversation = (id) => request("GET", `/api/conversations/${encodeURIComponent(id)}`);
/** Change a conversation's title and/or its settings ({system, temperature, max_tokens}). */
export const updateConversation = (id, changes) =>
  request("PATCH", `/api/conversations/${encodeURIComponent(id)}`, changes);
export const deleteConversation = (id) => request("DELETE", `/api/conversations/${encodeURIComponent(id)}`);

// Personal API keys (docs/api.md): the secret is in the answer to createKey only, never again.
export const listKeys = () => request("GET", "/api/keys");
export const createKey = (name) => request("POST", "/api/keys", { name });
export const deleteKey = (id) => request("DELETE", `/api/keys/${encodeURIComponent(id)}`);

/** The user's own usage: {spent: {day, month}, budgets: [{period, tokens, spent, remaining, resets_at}]}. */
export const getUsage = () => request("GET", "/api/usage");

const adminUrl = (name, params) => `/api/admin/${encodeURIComponent(name)}?${new URLSearchParams(params)}`;

/**
 * One of the operator's tables (`usage`, `models`, `feedback`) for `params` ({from, to, by}):
 * {from, to, rows, ...}. `adminCsvUrl` is the same table as a CSV download.
 */
export const getAdminTable = (name, params) => request("GET", adminUrl(name, params));
export const adminCsvUrl = (name, params) => adminUrl(name, { ...params, format: "csv" });

/** Rate reply `id`: {rating: "up" | "down" | null, comment?}; answers {rating, comment}. */
export const putFeedback = (id, feedback) =>
  request("PUT", `/api/messages/${encodeURIComponent(id)}/feedback`, feedback);

/** Stop reply `id` wherever it is being written; answers {id, status} once it is saved. */
export const stopReply = (id) => request("POST", `/api/messages/${encodeURIComponent(id)}/stop`, {});

/** POST /chat and yield its events as {event, data: parsed JSON, id}. Abort with `signal`. */
export async function* streamChat(payload, signal) {
  const response = await fetch("/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(payload),
    signal,
  });
  yield* eventsOf(response);
}

/**
 * Follow reply `id` (GET /api/messages/<id>/events) and yield its events like streamChat.
 * With `after` (an event id), only what comes after that event; without, from the start.
 */
export async function* followReply(id, after, signal) {
  const headers = { Accept: "text/event-stream" };
  if (after) headers["Last-Event-ID"] = after;
  const response = await fetch(`/api/messages/${encodeURIComponent(id)}/events`, {
    headers, signal, cache: "no-store",
  });
  yield* eventsOf(response);
}

async function* eventsOf(response) {
  if (!response.ok) throw await errorFrom(response);
  for await (const { event, data, id } of readEvents(response.body)) {
    yield { event, data: JSON.parse(data), id };
  }
}
