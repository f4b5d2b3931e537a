"""Human feedback: a web app where people rate, rank, vote on and edit generations.

Modules (each imports only modules listed above it, and the lower floors of textgym):

* :mod:`~textgym.app.feedback.db` - the SQLite project (versioned schema, WAL, one transaction per judgment);
* :mod:`~textgym.app.feedback.judgments` - what a judgment is and how it is validated;
* :mod:`~textgym.app.feedback.agreement` - Krippendorff's alpha and pairwise ranking agreement;
* :mod:`~textgym.app.feedback.export` - preference pairs and SFT rows derived from the judgments;
* :mod:`~textgym.app.feedback.server` - the FastAPI app (HTML pages and a JSON API; templates in ``templates/``);
* :mod:`~textgym.app.feedback.serve` - running it on uvicorn (foreground, or a background thread);
* :mod:`~textgym.app.feedback.generate` - completions sampled from a model for a new project;
* :mod:`~textgym.app.feedback.simulate` - simulated annotators that drive the JSON API over HTTP;
* :mod:`~textgym.app.feedback.cli` - ``textgym feedback new|add-annotator|serve|status|export|simulate``.

The web parts need the ``feedback`` extra (``pip install -e ".[feedback]"``).
"""
