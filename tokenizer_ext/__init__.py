"""Cell-sentence and token layer for C2S: pure, with no serving imports.

Expression -> ranked genes -> cell sentences -> exact token ids, budgets for the
model context, and the inverse (generated sentences -> expression).
"""

from tokenizer_ext.errors import (
    EnsemblIdError,
    ExpressionValueError,
    GeneCollisionError,
    GeneVocabularyError,
    InvalidGeneSymbolError,
    PromptBudgetError,
    TemplateError,
    TokenizationMismatchError,
    TokenizerExtError,
    TrainedRangeError,
    UnknownGeneError,
)
from tokenizer_ext.expression_source import ExpressionSource, open_expression
from tokenizer_ext.prompt_ids import PromptBatch, PromptEncoder, PromptIds
from tokenizer_ext.ranking import TIE_BREAKS, RankedCells
from tokenizer_ext.sentences import (
    RankedChunk,
    cell_sentences,
    iter_cell_sentences,
    iter_ranked_chunks,
    rank_cells,
    rank_vector,
    ranked_to_sentences,
    sentence_from_mapping,
    sentence_from_vector,
)
from tokenizer_ext.templates import (
    CELL_SENTENCE,
    MULTI_CELL_SENTENCES,
    TEMPLATE_FIELDS,
    PromptTemplate,
    multi_cell_text,
)
from tokenizer_ext.text_encoder import TextEncoder
from tokenizer_ext.token_cache import GeneTokenCache
from tokenizer_ext.vocab import (
    HUMAN,
    MOUSE,
    ORGANISMS,
    GeneVocabulary,
    guess_organism,
    looks_like_ensembl_id,
)

__all__ = [
    "CELL_SENTENCE",
    "HUMAN",
    "MOUSE",
    "MULTI_CELL_SENTENCES",
    "ORGANISMS",
    "TEMPLATE_FIELDS",
    "TIE_BREAKS",
    "EnsemblIdError",
    "ExpressionSource",
    "ExpressionValueError",
    "GeneCollisionError",
    "GeneTokenCache",
    "GeneVocabulary",
    "GeneVocabularyError",
    "InvalidGeneSymbolError",
    "PromptBatch",
    "PromptBudgetError",
    "PromptEncoder",
    "PromptIds",
    "PromptTemplate",
    "RankedCells",
    "RankedChunk",
    "TemplateError",
    "TextEncoder",
    "TokenizationMismatchError",
    "TokenizerExtError",
    "TrainedRangeError",
    "UnknownGeneError",
    "cell_sentences",
    "guess_organism",
    "iter_cell_sentences",
    "iter_ranked_chunks",
    "looks_like_ensembl_id",
    "multi_cell_text",
    "open_expression",
    "rank_cells",
    "rank_vector",
    "ranked_to_sentences",
    "sentence_from_mapping",
    "sentence_from_vector",
]
