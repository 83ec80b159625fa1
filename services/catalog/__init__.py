"""Catalog service: items, prices and stock, and the reservations that keep purchases from overselling."""
