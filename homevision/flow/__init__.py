"""The continuous-training flow: new exports in, history merged, drift checked, retrained when
it is worth it, the champion rule applied, the API told (homevision flow run / serve)."""
