"""The HTTP ceiling for benchmarks/serving.py: a FastAPI endpoint that only parses a two-field
pydantic body and multiplies. What one request costs at the least on this machine, with the same
server (uvicorn, uvloop, httptools) and load generator as homevision's own rows.

    python -m uvicorn ceiling_app:app --app-dir benchmarks --port 8000
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

BODY = {"SqFtTotal": 2_000.0, "price_per_sqft": 180.0}


class Home(BaseModel):
    SqFtTotal: float
    price_per_sqft: float


app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/valuations")
def value(home: Home) -> dict[str, float]:
    return {"predicted_close_price": home.SqFtTotal * home.price_per_sqft}
