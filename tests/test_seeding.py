from noisebrush.seeding import generator, mix, pick_seed


def test_mix_is_a_pure_function_of_its_values():
    assert mix(1, 2, 3) == mix(1, 2, 3) != mix(1, 2, 4)
    assert 0 <= mix(2 ** 70, -5) < 2 ** 63


def test_generator_draws_depend_on_the_values_only():
    import torch

    a = torch.randn(4, generator=generator(7, 1))
    assert torch.equal(a, torch.randn(4, generator=generator(7, 1)))


def test_pick_seed_keeps_a_given_seed_and_draws_a_fresh_one_otherwise():
    assert pick_seed(0) == 0 and pick_seed(12345) == 12345
    drawn = {pick_seed(None) for _ in range(20)}
    assert len(drawn) > 15 and all(0 <= s < 2 ** 31 for s in drawn)
