"""Teachers behind a student: the exact cache, combined sources, and the teacher sets a run names."""
