"""The review page (optional extra `collector`): operators work through the review queue in a
browser, and a dashboard shows the flywheel's health. It reads only redacted tables."""
