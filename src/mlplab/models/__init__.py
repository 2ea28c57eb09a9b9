from mlplab.models.mlp import MLP
from mlplab.models.module import SupervisedModule
from mlplab.models.tasks import ClassificationTask, RegressionTask, Task

__all__ = ["MLP", "SupervisedModule", "Task", "ClassificationTask", "RegressionTask"]
