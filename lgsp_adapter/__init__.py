"""lgsp-adapter: connects government agency systems to a RabbitMQ exchange bus."""

__version__ = "0.1.0"
