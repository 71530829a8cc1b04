"""``ett-forecasting``: a SegRNN-style multivariate forecaster on a grukit recurrent layer."""

from grukit.zoo.models.ett_forecasting.model import SegRNN
from grukit.zoo.models.ett_forecasting.recipe import EttForecasting

__all__ = ["SegRNN", "EttForecasting"]
