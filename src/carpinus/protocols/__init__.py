"""Protocol implementations (the HTTP/1.1 one lives in C: carpinus._core)."""
