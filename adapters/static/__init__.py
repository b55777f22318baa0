"""The pages' static files: the web chat, the staff desk (console) and its review page; shipped as package data."""
