"""The processes: the master (state, supervisor, reloads), its workers, and the pipes between them."""
