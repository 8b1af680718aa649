"""The code MLflow logs with every homevision model (MLflow's models from code).

MLflow runs this file when it loads a model: the pyfunc it names reads the fitted ValuationModel
from the model's `valuation_model` artifact (ValuationPyfunc.load_context). Logging a file rather
than a pickled Python object keeps the pyfunc's own code readable in the model's artifacts.
"""

import mlflow

from homevision.valuation.pyfunc import ValuationPyfunc

mlflow.models.set_model(ValuationPyfunc())
