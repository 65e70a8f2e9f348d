"""synctwin: a digital-twin testbed for plant-to-enterprise integration."""

__version__ = "0.1.0"
