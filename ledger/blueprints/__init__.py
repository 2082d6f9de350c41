"""One blueprint per page group and per API group; each is thin: parse, call a service, render."""
