"""The processes: the master (state, supervisor, reloads), its workers, the pipes between."""
