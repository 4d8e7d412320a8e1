# experiments/my_scores.py: scorers beside the experiment file (capitals.yaml's columns)
def exact_match(answer, row):
    return answer.strip().lower() == row["vars"]["expected"].lower()

def overlap(answer, row):
    words, wanted = set(answer.lower().split()), set(row["vars"]["expected"].lower().split())
    hit = len(words & wanted)
    return {"precision": hit / max(len(words), 1), "recall": hit / max(len(wanted), 1)}
