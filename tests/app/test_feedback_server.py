"""HTTP level (FastAPI's TestClient): every endpoint, validation, auth, CSRF, escaping, headers."""

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from feedback_helpers import XSS_IMG, XSS_SCRIPT, hidden  # noqa: E402
from textgym.app.feedback.server import MAX_BODY, create_app  # noqa: E402


@pytest.fixture()
def app(project):
    p, tokens = project
    return create_app(p), p, tokens


def logged_in(app, token):
    c = TestClient(app)
    r = c.get(f"/login?token={token}", follow_redirects=False)
    assert r.status_code == 303
    return c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_login_link_form_and_logout(app):
    app, p, tokens = app
    c = TestClient(app)
    page = c.get("/")
    assert page.status_code == 200 and 'name="token"' in page.text
    r = c.post("/login", data={"token": tokens["alice"], "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF check failed" in r.text
    r = c.post("/login", data={"token": tokens["alice"], "csrf": hidden(page.text, "csrf")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/annotate"
    assert c.get("/", follow_redirects=False).headers["location"] == "/annotate"
    assert c.get("/login?token=wrong").status_code == 401
    annotate = c.get("/annotate")
    assert c.post("/logout", data={"csrf": "x"}).status_code == 403
    r = c.post("/logout", data={"csrf": hidden(annotate.text, "csrf")}, follow_redirects=False)
    assert r.status_code == 303 and c.get("/annotate").status_code == 401
    admin = logged_in(app, tokens["admin"])
    assert admin.get("/", follow_redirects=False).headers["location"] == "/admin"


def test_annotate_page_escapes_model_text_and_sets_security_headers(app):
    app, p, tokens = app
    c = logged_in(app, tokens["alice"])
    r = c.get("/annotate")
    assert r.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt; fine" in r.text and XSS_SCRIPT not in r.text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in r.text and "<img" not in r.text
    assert "Greet &lt;b&gt;the&lt;/b&gt; user" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "default-src 'none'" in csp and "img-src 'none'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in r.text and r.text.count("<script") == 1
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
    assert "You judged <b id=\"done\">0</b>" in r.text


def test_form_submit_validation_csrf_and_progress(app):
    app, p, tokens = app
    c = logged_in(app, tokens["alice"])
    page = c.get("/annotate").text
    base = {"csrf": hidden(page, "csrf"), "item_id": hidden(page, "item_id"),
            "idempotency_key": hidden(page, "idempotency_key")}
    assert base["item_id"] == "1"
    r = c.post("/annotate", data={**base, "rating_1": "9", "comment_1": "kept"})
    assert r.status_code == 422 and "Not saved: rating of completion 1: must be 1-7, got 9" in r.text
    assert 'value="kept"' in r.text  # the annotator's input is kept on the page
    r = c.post("/annotate", data={**base, "csrf": "bad", "rating_1": "5"})
    assert r.status_code == 403
    r = c.post("/annotate", data={**base, "item_id": "99", "rating_1": "5"})
    assert r.status_code == 404 and "no item 99" in r.text
    assert p.counts()["judgments"] == 0
    form = {**base, "rating_1": "6", "rating_2": "2", "rank_1": "1", "rank_2": "2", "vote": "left",
            "edit_base": "2", "edit_text": "a kinder answer", "flag_2": "1", "flag_reason": "odd html"}
    r = c.post("/annotate", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/annotate?saved=")
    assert c.post("/annotate", data=form, follow_redirects=False).status_code == 303  # a double click
    [j] = p.judgments()
    assert j["ratings"] == {1: 6, 2: 2} and j["ranks"] == {1: 1, 2: 2} and j["vote"] == "left"
    assert j["edit"] == (2, "a kinder answer") and j["flags"] == [2] and j["flag_reason"] == "odd html"
    nxt = c.get("/annotate?saved=1").text
    assert "Saved (judgment 1)" in nxt and hidden(nxt, "item_id") == "2"
    assert "You judged <b id=\"done\">1</b>" in nxt
    r = c.post("/annotate", data={**base, "idempotency_key": "another-key-1", "vote": "right"})
    assert r.status_code == 409 and "already judged item 1" in r.text
    skip = {"csrf": base["csrf"], "item_id": "2", "idempotency_key": hidden(nxt, "idempotency_key"),
            "action": "skip"}
    assert c.post("/annotate", data=skip, follow_redirects=False).status_code == 303
    assert p.counts()["skips"] == 1


def test_json_api_next_submit_retry_and_errors(app):
    app, p, tokens = app
    c = TestClient(app)
    assert c.get("/api/next").status_code == 401
    assert "no token" in c.get("/api/next").json()["detail"]
    assert c.get("/api/next", headers=bearer("wrong")).status_code == 401
    assert c.get("/api/next", headers=bearer(tokens["admin"])).status_code == 403
    r = c.get("/api/next", headers=bearer(tokens["bob"]))
    item = r.json()["item"]
    assert item["id"] == 1 and [x["text"] for x in item["completions"]] == [XSS_SCRIPT, XSS_IMG]
    body = {"item_id": 1, "idempotency_key": "bob-00000001", "ratings": {"1": 3, "2": 5}, "ranking": [[2], [1]]}
    r = c.post("/api/judgments", json=body, headers=bearer(tokens["bob"]))
    assert r.status_code == 201 and r.json()["created"] is True
    again = c.post("/api/judgments", json=body, headers=bearer(tokens["bob"]))
    assert again.status_code == 200 and again.json() == {"judgment_id": r.json()["judgment_id"], "created": False}
    cases = [
        ({**body, "idempotency_key": "bob-00000002", "item_id": 3, "ratings": {"6": 0}}, 422, "must be 1-7, got 0"),
        ({**body, "idempotency_key": "bob-00000003", "item_id": 2, "ranking": [[3], [4]], "ratings": {}}, 422,
         "must order each shown completion exactly once"),
        ({**body, "idempotency_key": "bob-00000004", "item_id": 1234}, 404, "no item 1234"),
        ({**body, "idempotency_key": "bob-00000005", "item_id": "x"}, 422, "item_id: expected an integer"),
        ({**body, "idempotency_key": "bob-00000006"}, 409, "already judged item 1"),
    ]
    for payload, status, message in cases:
        r = c.post("/api/judgments", json=payload, headers=bearer(tokens["bob"]))
        assert (r.status_code, message in r.json()["detail"]) == (status, True), r.text
    r = c.post("/api/judgments", content=b"{not json", headers={**bearer(tokens["bob"]),
                                                                 "content-type": "application/json"})
    assert r.status_code in (400, 422) and "detail" in r.json()
    big = c.post("/api/judgments", content=b"x" * (MAX_BODY + 1), headers=bearer(tokens["bob"]))
    assert big.status_code == 413
    assert c.get("/api/progress", headers=bearer(tokens["bob"])).json() == {"done": 1, "left": 2, "total": 3}
    assert p.counts()["judgments"] == 1


def test_admin_status_and_exports(app):
    app, p, tokens = app
    c = TestClient(app)
    for who, vote in (("alice", "left"), ("bob", "left")):
        r = c.post("/api/judgments", headers=bearer(tokens[who]),
                   json={"item_id": 3, "idempotency_key": f"{who}-key-01", "vote": vote,
                         "ratings": {"6": 6, "7": 2}})
        assert r.status_code == 201
    for path in ("/api/status", "/api/export/pairs", "/api/export/sft"):
        assert c.get(path).status_code == 401
        assert c.get(path, headers=bearer(tokens["alice"])).status_code == 403
    s = c.get("/api/status", headers=bearer(tokens["admin"])).json()
    assert s["counts"]["judgments"] == 2 and s["annotators"] == {"alice": 1, "bob": 1, "carol": 0}
    assert s["agreement"]["vote_agreement"] == 1.0 and s["agreement"]["rating_alpha_interval"] == pytest.approx(1.0)
    pairs = c.get("/api/export/pairs", headers=bearer(tokens["admin"])).json()
    assert [(x["chosen"], x["rejected"], x["annotators"]) for x in pairs] == [
        ("you are great", "go away", ["alice", "bob"])]
    assert c.get("/api/export/pairs?aggregate=none", headers=bearer(tokens["admin"])).json()[0]["votes_for"] == 1
    assert c.get("/api/export/pairs?aggregate=mean", headers=bearer(tokens["admin"])).status_code == 422
    assert c.get("/api/export/pairs?margin=9", headers=bearer(tokens["admin"])).status_code == 422
    assert c.get("/api/export/secrets", headers=bearer(tokens["admin"])).status_code == 404
    assert c.get("/api/export/..%2F..%2Fetc%2Fpasswd", headers=bearer(tokens["admin"])).status_code == 404
    admin = logged_in(app, tokens["admin"])
    page = admin.get("/admin")
    assert page.status_code == 200 and "2 judgments" in page.text and "1.000" in page.text
    f = admin.get("/admin/export/pairs.jsonl")
    assert f.status_code == 200 and f.headers["content-type"].startswith("application/x-ndjson")
    assert f.text.count("\n") == 1 and "attachment" in f.headers["content-disposition"]
    assert admin.get("/admin/export/sft.jsonl").text == ""
    assert admin.get("/annotate").status_code == 403
    assert logged_in(app, tokens["alice"]).get("/admin").status_code == 403
    assert TestClient(app).get("/admin").status_code == 401


def test_no_path_reaches_the_file_system(app):
    app, p, tokens = app
    c = TestClient(app)
    for path in ("/templates/base.html", "/static/../db.py", "/fb.db", "/..%2Ffb.db", "/docs", "/openapi.json"):
        assert c.get(path).status_code == 404, path
