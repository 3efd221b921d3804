"""``watt serve``: the agent over HTTP (Starlette on uvicorn).

A turn's stream is the session journal's rows (``agent.store.journal``) as Server-Sent
Events, so a client that drops resumes from its last ``seq``; catalog programs are endpoints
that follow the catalog directories live; every ``/v1`` route needs the bearer token. The page
at ``/`` (``server/static``) uses only this API.

Modules: ``config`` (what the server was started with), ``security`` (the token, the bind
rule), ``state`` (what one server holds), ``pool`` (open sessions, running turns, the caps),
``turns`` (a turn on its thread, the input guard), ``stream`` (journal tails as SSE),
``programs`` (the live catalog, running programs), ``http`` (JSON errors, bounded bodies),
``routes`` (sessions, turns, events, programs), ``agents`` (named agents under
``/v1/agents``) and ``openai`` (the HTTP API), ``app`` (the ASGI app) and ``run`` (uvicorn,
signals). Starlette and uvicorn are the ``serve`` extra: ``watt serve``
imports this package only once it has checked they are installed.
"""
