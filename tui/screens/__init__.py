"""The app's screens: one module each (shown as tabs of one tab bar)."""
