from mlplab.models.mlp import MLP
from mlplab.models.module import MLPModule
from mlplab.models.tasks import ClassificationTask, RegressionTask, Task

__all__ = ["MLP", "MLPModule", "Task", "ClassificationTask", "RegressionTask"]
