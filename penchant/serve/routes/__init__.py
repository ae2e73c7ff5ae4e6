"""One router per resource; each route parses, calls the store or the model holder, and formats."""
