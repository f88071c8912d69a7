"""Cell-sentence and token layer for C2S: pure, with no serving imports.

Expression -> ranked genes -> cell sentences -> exact token ids, the ranges the
checkpoint was trained on, and the inverse (generated sentences -> expression).
"""

from tokenizer_ext.cell_text import first_genes, multi_cell_text, split_multi_cell_text
from tokenizer_ext.errors import (
    EnsemblIdError,
    ExpressionValueError,
    GeneCollisionError,
    GeneVocabularyError,
    InvalidGeneSymbolError,
    TemplateError,
    TokenizationMismatchError,
    TokenizerExtError,
    UnknownGeneError,
)
from tokenizer_ext.expression_source import (
    ExpressionSource,
    RankedChunk,
    iter_ranked_chunks,
    open_expression,
)
from tokenizer_ext.inverse import (
    CleanedSentence,
    RankExpressionFit,
    clean_generated_sentence,
    fit_rank_expression,
    reconstruct_expression,
)
from tokenizer_ext.prompt_ids import PromptEncoder, PromptIds
from tokenizer_ext.prompt_pieces import PromptBatch
from tokenizer_ext.ranking import TIE_BREAKS, RankedCells, advance_c2s_rng, rank_csr
from tokenizer_ext.sentences import (
    cell_sentences,
    rank_vector,
    ranked_to_sentences,
    sentence_from_vector,
)
from tokenizer_ext.templates import (
    CELL_SENTENCE,
    MULTI_CELL_SENTENCES,
    TEMPLATE_FIELDS,
    PromptTemplate,
)
from tokenizer_ext.text_encoder import TextEncoder
from tokenizer_ext.token_cache import GeneTokenCache
from tokenizer_ext.trained_ranges import C2S_TRAINED_RANGES, TrainedRanges
from tokenizer_ext.vocab import (
    HUMAN,
    MOUSE,
    ORGANISMS,
    GeneVocabulary,
    looks_like_ensembl_id,
)

__all__ = [
    "C2S_TRAINED_RANGES",
    "CELL_SENTENCE",
    "HUMAN",
    "MOUSE",
    "MULTI_CELL_SENTENCES",
    "ORGANISMS",
    "TEMPLATE_FIELDS",
    "TIE_BREAKS",
    "CleanedSentence",
    "EnsemblIdError",
    "ExpressionSource",
    "ExpressionValueError",
    "GeneCollisionError",
    "GeneTokenCache",
    "GeneVocabulary",
    "GeneVocabularyError",
    "InvalidGeneSymbolError",
    "PromptBatch",
    "PromptEncoder",
    "PromptIds",
    "PromptTemplate",
    "RankExpressionFit",
    "RankedCells",
    "RankedChunk",
    "TemplateError",
    "TextEncoder",
    "TokenizationMismatchError",
    "TokenizerExtError",
    "TrainedRanges",
    "UnknownGeneError",
    "advance_c2s_rng",
    "cell_sentences",
    "clean_generated_sentence",
    "first_genes",
    "fit_rank_expression",
    "iter_ranked_chunks",
    "looks_like_ensembl_id",
    "multi_cell_text",
    "open_expression",
    "rank_csr",
    "rank_vector",
    "ranked_to_sentences",
    "reconstruct_expression",
    "sentence_from_vector",
    "split_multi_cell_text",
]
