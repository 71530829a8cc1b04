"""``imdb-sentiment``: raw review text in, probability of a positive review out."""

from grukit.zoo.models.imdb_sentiment.model import SentimentModel
from grukit.zoo.models.imdb_sentiment.preprocessing import ReviewTokenizer
from grukit.zoo.models.imdb_sentiment.recipe import ImdbSentiment

__all__ = ["SentimentModel", "ReviewTokenizer", "ImdbSentiment"]
