from .access import bp as access_bp
from .admin import bp as admin_bp
from .chat import bp as chat_bp
from .conversations import bp as conversations_bp
from .keys import bp as keys_bp
from .messages import bp as messages_bp
from .openai_api import bp as openai_api_bp
from .ops import bp as ops_bp
from .pages import bp as pages_bp
from .usage import bp as usage_bp
from .vendor import bp as vendor_bp
from .widget import bp as widget_bp

blueprints = (pages_bp, access_bp, chat_bp, conversations_bp, messages_bp, vendor_bp, ops_bp,
              usage_bp, admin_bp)
# Only while API_KEYS is on: personal keys and the OpenAI-compatible API they open.
api_key_blueprints = (keys_bp, openai_api_bp)
# Only when WIDGET_ORIGINS names the portals that may show it.
widget_blueprints = (widget_bp,)
