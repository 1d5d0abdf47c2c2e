"""Nova's metadata service for guests: the documents (base), the API (handler), vendor data, the config drive."""
