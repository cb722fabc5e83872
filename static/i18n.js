// The page's two languages. The first of the browser's languages that we have wins, unless the
// reader picked one with the switch (remembered in localStorage; boot.js reads the same key).
//
// Elements remember which string they show (data-i18n for the text, data-i18n-<attribute> for
// an attribute, data-i18n-args for its values), so switching language re-translates everything
// already on the page, including messages' buttons and notes.

const STRINGS = {
  en: {
    "app.name": "StreamDesk",
    "access.title": "Sign in",
    "access.codeText": "Enter the access code you were given to use this chat.",
    "access.ssoText": "Sign in through your company's portal to use this chat.",
    "access.code": "Access code",
    "access.enter": "Enter",
    "settings.locked": "The system prompt is set by the administrator.",
    "sidebar.label": "Conversations",
    "sidebar.open": "Show conversations",
    "sidebar.close": "Hide conversations",
    "sidebar.search": "Search conversations",
    "sidebar.searchPlaceholder": "Search by title",
    "sidebar.empty": "No conversations yet.",
    "sidebar.noMatch": "No conversation matches.",
    "sidebar.rename": "Rename “{title}”",
    "sidebar.renameInput": "New title for “{title}”",
    "sidebar.delete": "Delete “{title}”",
    "sidebar.language": "Language",
    "sidebar.theme": "Theme",
    "theme.system": "System",
    "theme.light": "Light",
    "theme.dark": "Dark",
    "chat.new": "New chat",
    "chat.untitled": "New chat",
    "model.label": "Model",
    "settings.open": "Settings",
    "settings.title": "Conversation settings",
    "settings.system": "System prompt",
    "settings.systemHint": "Instructions the model follows throughout this conversation.",
    "settings.temperature": "Temperature",
    "settings.temperatureHint": "0 to 2. Empty: the model's default.",
    "settings.maxTokens": "Max tokens",
    "settings.maxTokensHint": "Longest reply, 1 to 131072. Empty: the model's default.",
    "settings.newChat": "They apply from the first message of this chat.",
    "settings.save": "Save",
    "settings.cancel": "Cancel",
    "settings.saved": "Settings saved.",
    "export.label": "Export",
    "export.markdown": "Markdown (.md)",
    "export.json": "JSON (.json)",
    "composer.label": "Message",
    "composer.placeholder": "Message the model. Enter sends, Shift+Enter adds a line.",
    "composer.send": "Send",
    "composer.stop": "Stop",
    "composer.hint": "Enter sends · Shift+Enter new line · Esc stops",
    "composer.hintEmbed": "Enter sends · Shift+Enter new line · Esc closes",
    "jump": "Jump to latest",
    "messages.label": "Messages",
    "skip": "Skip to the message box",
    "empty.title": "Start a conversation",
    "empty.hint": "Replies appear as the model writes them. Markdown, code and LaTeX are formatted.",
    "keys.open": "API keys",
    "keys.title": "API keys",
    "keys.intro": "A key lets your own programs use these models through an OpenAI-compatible API, as you. Keep it secret.",
    "keys.baseUrl": "Base URL",
    "keys.header": "Header",
    "keys.name": "Name",
    "keys.nameHint": "Where you will use it, e.g. “laptop script”.",
    "keys.create": "Create key",
    "keys.newKey": "New key “{name}”",
    "keys.copy": "Copy",
    "keys.shownOnce": "Copy it now: it will not be shown again.",
    "keys.yours": "Your keys",
    "keys.empty": "No keys yet.",
    "keys.created": "Created {date}",
    "keys.lastUsed": "Last used {date}",
    "keys.neverUsed": "Never used",
    "keys.revoke": "Revoke",
    "keys.revokeLabel": "Revoke “{name}”",
    "keys.revokeTitle": "Revoke this key?",
    "keys.revokeBody": "Programs using “{name}” will stop working at once. This cannot be undone.",
    "keys.close": "Close",
    "widget.close": "Close the chat",
    "confirm.deleteTitle": "Delete this conversation?",
    "confirm.deleteBody": "“{title}” and all its messages will be deleted. This cannot be undone.",
    "confirm.delete": "Delete",
    "confirm.cancel": "Cancel",
    "message.you": "You",
    "message.assistant": "Assistant",
    "message.reasoning": "Reasoning",
    "action.copy": "Copy",
    "action.copyCode": "Copy",
    "action.copied": "Copied",
    "action.edit": "Edit and resend",
    "action.regenerate": "Regenerate",
    "action.retry": "Retry",
    "starters.label": "Suggested questions",
    "feedback.label": "Rate this reply",
    "feedback.up": "Good reply",
    "feedback.down": "Bad reply",
    "feedback.thanks": "Thanks for your feedback.",
    "feedback.cleared": "Rating removed.",
    "feedback.commentLabel": "What was wrong with this reply? (optional)",
    "feedback.commentHint": "Up to {n} characters. Enter sends, Esc closes.",
    "feedback.send": "Send",
    "feedback.cancel": "Skip",
    "feedback.thanksComment": "Thanks: your comment was sent.",
    "edit.label": "Edit your message",
    "edit.send": "Send",
    "edit.cancel": "Cancel",
    "status.writing": "Writing…",
    "status.reconnecting": "Connection lost: reconnecting…",
    "status.done": "Reply complete.",
    "status.busy": "A reply is being written: stop it first (Esc).",
    "status.busyEmbed": "A reply is being written: stop it first.",
    "status.copied": "Copied to the clipboard.",
    "status.copyFailed": "Could not copy: select the text and copy it by hand.",
    "status.plain": "Formatting libraries are missing (run npm ci): showing plain text.",
    "status.loadFailed": "Could not load: {message}",
    "status.cancelled": "Stopped.",
    "status.interrupted": "The reply was cut off before it finished.",
    "status.streaming": "Still being written…",
    "status.length": "The reply stopped at the max tokens limit.",
    "reason.bad_request": "The model service rejected the request.",
    "reason.context_length": "The conversation is too long for this model.",
    "reason.auth": "The model service refused StreamDesk's credentials.",
    "reason.model_not_found": "The model service does not know this model.",
    "reason.rate_limited": "The model service is limiting requests: wait a moment and retry.",
    "reason.quota_exceeded": "The quota at the model service is used up.",
    "reason.upstream_unavailable": "The model service could not be reached.",
    "reason.timeout": "The model service took too long to answer.",
    "reason.upstream_error": "The model service failed.",
    "reason.interrupted": "The model service cut the reply off.",
    "reason.content_refused": "The model service refused this content.",
    "reason.configuration": "StreamDesk is not configured for this model.",
    "reason.server_stopping": "The server restarted while writing this reply.",
    "reason.internal": "Something went wrong in StreamDesk.",
    "reason.network": "The connection to StreamDesk was lost.",
    "stats.tokens": "{n} tokens",
    "stats.tokensEstimated": "≈{n} tokens",
    "stats.firstToken": "first token {s} s",
    "stats.speed": "{n} tokens/s",
    "stats.omitted": "{n} earlier messages not sent (too long for the model)",
  },
  "zh-CN": {
    "app.name": "StreamDesk",
    "access.title": "登录",
    "access.codeText": "请输入你获得的访问码以使用本聊天。",
    "access.ssoText": "请通过公司门户登录后使用本聊天。",
    "access.code": "访问码",
    "access.enter": "进入",
    "settings.locked": "系统提示词由管理员设定。",
    "sidebar.label": "对话",
    "sidebar.open": "显示对话列表",
    "sidebar.close": "隐藏对话列表",
    "sidebar.search": "搜索对话",
    "sidebar.searchPlaceholder": "按标题搜索",
    "sidebar.empty": "还没有对话。",
    "sidebar.noMatch": "没有匹配的对话。",
    "sidebar.rename": "重命名“{title}”",
    "sidebar.renameInput": "“{title}”的新标题",
    "sidebar.delete": "删除“{title}”",
    "sidebar.language": "语言",
    "sidebar.theme": "主题",
    "theme.system": "跟随系统",
    "theme.light": "浅色",
    "theme.dark": "深色",
    "chat.new": "新对话",
    "chat.untitled": "新对话",
    "model.label": "模型",
    "settings.open": "设置",
    "settings.title": "对话设置",
    "settings.system": "系统提示词",
    "settings.systemHint": "模型在整个对话中遵循的指示。",
    "settings.temperature": "温度",
    "settings.temperatureHint": "0 到 2。留空：使用模型默认值。",
    "settings.maxTokens": "最大 token 数",
    "settings.maxTokensHint": "回复的最大长度，1 到 131072。留空：使用模型默认值。",
    "settings.newChat": "从本对话的第一条消息起生效。",
    "settings.save": "保存",
    "settings.cancel": "取消",
    "settings.saved": "设置已保存。",
    "export.label": "导出",
    "export.markdown": "Markdown (.md)",
    "export.json": "JSON (.json)",
    "composer.label": "消息",
    "composer.placeholder": "给模型发消息。Enter 发送，Shift+Enter 换行。",
    "composer.send": "发送",
    "composer.stop": "停止",
    "composer.hint": "Enter 发送 · Shift+Enter 换行 · Esc 停止",
    "composer.hintEmbed": "Enter 发送 · Shift+Enter 换行 · Esc 关闭",
    "jump": "跳到最新",
    "messages.label": "消息记录",
    "skip": "跳到输入框",
    "empty.title": "开始对话",
    "empty.hint": "回复会随模型生成逐字显示，支持 Markdown、代码和 LaTeX 公式。",
    "keys.open": "API 密钥",
    "keys.title": "API 密钥",
    "keys.intro": "密钥让你自己的程序以你的身份，通过 OpenAI 兼容的 API 使用这些模型。请妥善保密。",
    "keys.baseUrl": "Base URL",
    "keys.header": "请求头",
    "keys.name": "名称",
    "keys.nameHint": "用在哪里，例如“笔记本上的脚本”。",
    "keys.create": "创建密钥",
    "keys.newKey": "新密钥“{name}”",
    "keys.copy": "复制",
    "keys.shownOnce": "请现在复制：它不会再次显示。",
    "keys.yours": "你的密钥",
    "keys.empty": "还没有密钥。",
    "keys.created": "创建于 {date}",
    "keys.lastUsed": "最近使用 {date}",
    "keys.neverUsed": "从未使用",
    "keys.revoke": "吊销",
    "keys.revokeLabel": "吊销“{name}”",
    "keys.revokeTitle": "吊销这个密钥？",
    "keys.revokeBody": "使用“{name}”的程序将立即无法访问，且无法恢复。",
    "keys.close": "关闭",
    "widget.close": "关闭对话",
    "confirm.deleteTitle": "删除这个对话？",
    "confirm.deleteBody": "“{title}”及其全部消息将被删除，且无法恢复。",
    "confirm.delete": "删除",
    "confirm.cancel": "取消",
    "message.you": "你",
    "message.assistant": "助手",
    "message.reasoning": "思考过程",
    "action.copy": "复制",
    "action.copyCode": "复制",
    "action.copied": "已复制",
    "action.edit": "编辑并重新发送",
    "action.regenerate": "重新生成",
    "action.retry": "重试",
    "starters.label": "推荐问题",
    "feedback.label": "评价这条回复",
    "feedback.up": "好回复",
    "feedback.down": "坏回复",
    "feedback.thanks": "感谢你的反馈。",
    "feedback.cleared": "已取消评价。",
    "feedback.commentLabel": "这条回复有什么问题？（选填）",
    "feedback.commentHint": "最多 {n} 个字符。Enter 发送，Esc 关闭。",
    "feedback.send": "发送",
    "feedback.cancel": "跳过",
    "feedback.thanksComment": "感谢：你的意见已发送。",
    "edit.label": "编辑你的消息",
    "edit.send": "发送",
    "edit.cancel": "取消",
    "status.writing": "正在生成…",
    "status.reconnecting": "连接中断：正在重新连接…",
    "status.done": "回复完成。",
    "status.busy": "正在生成回复：请先停止（Esc）。",
    "status.busyEmbed": "正在生成回复：请先停止。",
    "status.copied": "已复制到剪贴板。",
    "status.copyFailed": "无法复制：请手动选中文本复制。",
    "status.plain": "缺少排版库（请运行 npm ci），以纯文本显示。",
    "status.loadFailed": "加载失败：{message}",
    "status.cancelled": "已停止。",
    "status.interrupted": "回复在完成前被中断。",
    "status.streaming": "仍在生成…",
    "status.length": "回复已达到最大 token 数限制。",
    "reason.bad_request": "模型服务拒绝了请求。",
    "reason.context_length": "对话太长，超出了该模型的上下文长度。",
    "reason.auth": "模型服务拒绝了 StreamDesk 的凭据。",
    "reason.model_not_found": "模型服务不认识这个模型。",
    "reason.rate_limited": "模型服务正在限流：请稍候重试。",
    "reason.quota_exceeded": "模型服务的额度已用完。",
    "reason.upstream_unavailable": "无法连接模型服务。",
    "reason.timeout": "模型服务响应超时。",
    "reason.upstream_error": "模型服务出错。",
    "reason.interrupted": "模型服务中断了回复。",
    "reason.content_refused": "模型服务拒绝了该内容。",
    "reason.configuration": "StreamDesk 未正确配置该模型。",
    "reason.server_stopping": "服务器在生成回复时重启了。",
    "reason.internal": "StreamDesk 内部出错。",
    "reason.network": "与 StreamDesk 的连接已断开。",
    "stats.tokens": "{n} 个 token",
    "stats.tokensEstimated": "约 {n} 个 token",
    "stats.firstToken": "首 token {s} 秒",
    "stats.speed": "{n} token/秒",
    "stats.omitted": "有 {n} 条较早的消息未发送（超出模型长度）",
  },
};

export const LANGUAGES = { en: "English", "zh-CN": "中文" };
const STORAGE_KEY = "streamdesk.language";
const ATTRIBUTES = ["aria-label", "title", "placeholder"];
const listeners = [];

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function fromBrowser() {
  for (const tag of navigator.languages?.length ? navigator.languages : [navigator.language]) {
    if (/^zh\b/i.test(tag || "")) return "zh-CN";
    if (/^en\b/i.test(tag || "")) return "en";
  }
  return "en";
}

let language = STRINGS[stored()] ? stored() : fromBrowser();

export const currentLanguage = () => language;
export const has = (key) => key in STRINGS.en;

export function t(key, args = null) {
  const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
  return args ? text.replace(/\{(\w+)\}/g, (_, name) => String(args[name] ?? "")) : text;
}

/**
 * Show string `key` in `element` (its text, or `attribute`) and remember it for a language
 * switch. `fallback` is used when `key` is unknown (error codes from newer servers).
 */
export function tr(element, key, args = null, attribute = "textContent", fallback = null) {
  if (fallback && !has(key)) key = fallback;
  if (attribute === "textContent") element.dataset.i18n = key;
  else element.setAttribute(`data-i18n-${attribute}`, key);
  if (args) element.dataset.i18nArgs = JSON.stringify(args);
  apply(element);
}

function apply(element) {
  const args = element.dataset.i18nArgs ? JSON.parse(element.dataset.i18nArgs) : null;
  if (element.dataset.i18n) element.textContent = t(element.dataset.i18n, args);
  for (const attribute of ATTRIBUTES) {
    const key = element.getAttribute(`data-i18n-${attribute}`);
    if (key) element.setAttribute(attribute, t(key, args));
  }
}

export function translatePage(root = document) {
  document.documentElement.lang = language;
  const selector = ["[data-i18n]", ...ATTRIBUTES.map((a) => `[data-i18n-${a}]`)].join(",");
  root.querySelectorAll(selector).forEach(apply);
}

/** Switch to language `next`; remembered unless `remember` is false (the widget's panel). */
export function setLanguage(next, { remember = true } = {}) {
  if (!STRINGS[next]) return;
  language = next;
  try {
    if (remember) localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not remembered, but switched for this visit.
  }
  translatePage();
  listeners.forEach((listener) => listener(language));
}

export const onLanguageChange = (listener) => listeners.push(listener);
