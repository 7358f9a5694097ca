import math

import pytest
import torch

from gptcore.errors import CorpusError
from gptcore.model.gpt import GPTModel
from gptcore.training.evaluate import calc_loss_batch, calc_loss_loader, perplexity


def test_loader_loss_is_mean_of_batch_losses(tiny_config):
    torch.manual_seed(0)
    model = GPTModel(tiny_config).eval()
    batches = [(torch.randint(0, 500, (2, 16)), torch.randint(0, 500, (2, 16))) for _ in range(4)]
    with torch.no_grad():
        losses = [calc_loss_batch(x, y, model, "cpu").item() for x, y in batches]
    assert calc_loss_loader(batches, model, "cpu") == pytest.approx(sum(losses) / 4)
    assert calc_loss_loader(batches, model, "cpu", num_batches=2) == pytest.approx(
        sum(losses[:2]) / 2
    )
    assert calc_loss_loader(batches, model, "cpu", num_batches=99) == pytest.approx(sum(losses) / 4)


def test_untrained_loss_is_near_log_vocab(tiny_config):
    torch.manual_seed(0)
    model = GPTModel(tiny_config).eval()
    x = torch.randint(0, tiny_config.vocab_size, (2, 16))
    loss = calc_loss_batch(x, x, model, "cpu").item()
    assert abs(loss - math.log(tiny_config.vocab_size)) < 1.0


def test_empty_loader_is_an_error_not_nan(tiny_config):
    model = GPTModel(tiny_config)
    with pytest.raises(CorpusError, match="no batches"):
        calc_loss_loader([], model, "cpu")


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50257)) == pytest.approx(50257)
    assert perplexity(1e6) == math.inf
