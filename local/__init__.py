"""Local stack: SES emulator and function gateway for development and tests."""
