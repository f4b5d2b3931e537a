"""The application layer of textgym (the top floor): command line, run configs, web apps."""
