from .access import bp as access_bp
from .chat import bp as chat_bp
from .conversations import bp as conversations_bp
from .messages import bp as messages_bp
from .ops import bp as ops_bp
from .pages import bp as pages_bp
from .vendor import bp as vendor_bp

blueprints = (pages_bp, access_bp, chat_bp, conversations_bp, messages_bp, vendor_bp, ops_bp)
