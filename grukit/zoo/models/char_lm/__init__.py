"""``char-lm``: a character language model on Tiny Shakespeare with O(1)-per-character generation."""

from grukit.zoo.models.char_lm.generation import generate
from grukit.zoo.models.char_lm.model import CharLM
from grukit.zoo.models.char_lm.recipe import CharLanguageModel

__all__ = ["CharLM", "CharLanguageModel", "generate"]
