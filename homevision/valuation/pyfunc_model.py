"""The code MLflow logs with every homevision model (MLflow's models from code).

MLflow runs this file when it loads a model: the pyfunc it names reads the fitted ValuationModel
from the model's `valuation_model` artifact (ValuationPyfunc.load_context). Logging a file rather
than a pickled Python object keeps the pyfunc's own code readable in the model's artifacts.

ValuationPyfunc is imported from homevision.valuation.model, where every homevision version
answers for it (it lives in homevision.valuation.pyfunc since issue 25): a model registered by
this version still loads where an earlier version serves.
"""

import mlflow

from homevision.valuation.model import ValuationPyfunc

mlflow.models.set_model(ValuationPyfunc())
