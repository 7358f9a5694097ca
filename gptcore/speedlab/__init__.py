"""Speed Lab: the chapter's speed-up ladder, measured on this machine, and its saved results."""
