"""Call records as events, written as the call goes (see store.py), and the journal that feeds them."""
