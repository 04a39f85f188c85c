"""GUI tests run headless: Qt's offscreen platform, set before any Qt import."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
