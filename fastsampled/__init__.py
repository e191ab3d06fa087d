"""fastsampled: sampled softmax, NCE and candidate samplers for huge vocabularies on CPUs.

TensorFlow's ``tf.nn.sampled_softmax_loss`` / ``tf.nn.nce_loss`` and candidate samplers,
numerically faithful, as parallel Numba kernels.
"""
from . import datasets
from .alias import AliasTable
from .head import SampledSoftmaxHead
from .keyedvectors import KeyedVectors
from .losses import (SparseGrads, nce_loss, nce_loss_and_grads, sampled_softmax_loss,
                     sampled_softmax_loss_and_grads)
from .optimizers import SGD, Adagrad, Adam
from .samplers import (AllCandidateSampler, CandidateSampler, CandidateSamples,
                       FixedUnigramSampler, LearnedUnigramSampler, LogUniformSampler,
                       UniformSampler, all_candidate_sampler, compute_accidental_hits,
                       expected_count, fixed_unigram_candidate_sampler,
                       learned_unigram_candidate_sampler, log_uniform_candidate_sampler,
                       uniform_candidate_sampler)
from .sharding import ShardedMatrix, StoreError, StoreLockedError
from .word2vec import Word2Vec
from .fasttext import FastText, FastTextKeyedVectors, load_facebook_model

__version__ = "0.1.0"

__all__ = [
    "SampledSoftmaxHead", "datasets", "AliasTable", "SparseGrads", "nce_loss", "nce_loss_and_grads", "sampled_softmax_loss",
    "sampled_softmax_loss_and_grads", "AllCandidateSampler", "CandidateSampler",
    "CandidateSamples", "FixedUnigramSampler", "LearnedUnigramSampler", "LogUniformSampler",
    "UniformSampler", "all_candidate_sampler", "compute_accidental_hits", "expected_count",
    "fixed_unigram_candidate_sampler", "learned_unigram_candidate_sampler",
    "log_uniform_candidate_sampler", "uniform_candidate_sampler",
    "SGD", "Adagrad", "Adam",
    "ShardedMatrix", "StoreError", "StoreLockedError",
    "KeyedVectors",
    "Word2Vec",
    "FastText", "FastTextKeyedVectors", "load_facebook_model",
]
