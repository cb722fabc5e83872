// Export a conversation as a file: Markdown to read or paste elsewhere, JSON with everything the
// server keeps (ids, statuses, reasoning, usage, settings). Built in the browser and saved
// through a download link; nothing leaves the machine.

import { STATUS } from "./status.js";

export function conversationToMarkdown(conversation) {
  const lines = [`# ${conversation.title}`, ""];
  const { system } = conversation.settings || {};
  if (system) lines.push("## System", "", system, "");
  for (const message of conversation.messages) {
    if (message.role === "user") {
      lines.push("## User", "", message.content, "");
      continue;
    }
    lines.push(`## Assistant (${message.model || conversation.model})`, "");
    if (message.reasoning) {
      lines.push(...message.reasoning.split("\n").map((line) => `> ${line}`), "");
    }
    lines.push(message.content, "");
    if (message.status && message.status !== STATUS.COMPLETE) {
      const why = message.error?.message ? `: ${message.error.message}` : "";
      lines.push(`_(${message.status}${why})_`, "");
    }
  }
  return lines.join("\n");
}

export function exportConversation(conversation, format) {
  const markdown = format === "markdown";
  const text = markdown ? conversationToMarkdown(conversation) : JSON.stringify(conversation, null, 2);
  const type = markdown ? "text/markdown" : "application/json";
  download(`${fileName(conversation.title)}.${markdown ? "md" : "json"}`, text, `${type};charset=utf-8`);
}

function fileName(title) {
  // Keep letters of any script; drop what file systems refuse.
  const name = title.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, " ").replace(/\s+/g, " ").trim();
  return name.slice(0, 80) || "conversation";
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000); // after the download has started
}
