"""The staff desk (console) page: HTML, CSS and JavaScript served by adapters/http/desk_page.py."""
