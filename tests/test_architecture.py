"""The rooms of the package: names stay importable where they were, and old files load."""
import fastals


def test_moved_names_stay_importable_where_they_were():
    import fastals.data
    import fastals.evaluation
    import fastals.id_recommender

    assert fastals.data.IdRecommender is fastals.id_recommender.IdRecommender
    assert fastals.data.score_pairs is fastals.id_recommender.score_pairs
    assert fastals.IdRecommender is fastals.id_recommender.IdRecommender
    assert {"IdRecommender", "score_pairs"} <= set(dir(fastals.data))
