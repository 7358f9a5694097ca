"""Small building blocks every part uses: paths, atomic files, formatting, hashing,
the TOML writer, progress lines and the resumable HTTP downloader. No torch here.
"""
