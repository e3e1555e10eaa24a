#!/usr/bin/env python3
"""Writes data/demo/stories.jsonl: short English stories generated from hand-written templates
(self-written for saeflow, public domain / CC0). Deterministic: python3 make-corpus.py > stories.jsonl"""
import json, random

r = random.Random(2026)
names = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lena",
         "Milo", "Nora", "Otto", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vik", "Wren", "Zoe"]
animals = ["cat", "dog", "fox", "owl", "rabbit", "horse", "duck", "goat", "mouse", "bear", "frog", "crow"]
places = ["the forest", "the old mill", "the market", "the river bank", "the library", "the hill",
          "the garden", "the harbour", "the school yard", "the bakery", "the bridge", "the meadow"]
things = ["a red kite", "a silver key", "a small boat", "a blue hat", "a map", "a jar of honey",
          "a wooden box", "a lantern", "a book of songs", "a warm scarf", "a bag of apples", "a bell"]
weather = ["It was a cold morning", "The sun was bright", "Rain fell all day", "The wind was strong",
           "Snow covered the roofs", "It was a quiet evening", "Fog rolled over the fields"]
feel = ["happy", "sad", "worried", "curious", "proud", "tired", "surprised", "brave", "calm"]
verbs = ["found", "lost", "carried", "painted", "fixed", "shared", "hid", "wanted", "made"]
ends = ["They walked home together.", "Then everyone laughed.", "It was the best day of the year.",
        "After that, the {a} came back every day.", "{n} never forgot it.", "The end.",
        "Nobody knew where it came from.", "{n} went to sleep with a smile."]
counts = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

def story():
    n, m = r.sample(names, 2); a = r.choice(animals); p, q = r.sample(places, 2)
    t = r.choice(things); f1, f2 = r.sample(feel, 2); v = r.choice(verbs); c = r.choice(counts)
    s = [f"{r.choice(weather)} when {n} went to {p}."]
    s.append(r.choice([f"There {n} {v} {t}.", f"{n} met a {a} near {p}.", f"{n} was looking for {t}."]))
    s.append(r.choice([f"The {a} looked {f1}.", f"{n} felt {f1}, so {n} called {m}.",
                       f"{m} said, \"Let us take it to {q}.\"", f"\"Is this yours?\" asked {n}."]))
    for _ in range(r.randint(1, 4)):
        s.append(r.choice([
            f"They counted {c} birds on the way to {q}.",
            f"{m} {r.choice(verbs)} {r.choice(things)} and gave it to the {a}.",
            f"The {a} ran to {r.choice(places)} and {n} followed.",
            f"\"I am {r.choice(feel)},\" said {m}, \"but I will help.\"",
            f"At {q} they met an old {r.choice(animals)} who knew many stories.",
            f"{n} and {m} sat down and ate {r.choice(['bread', 'soup', 'cake', 'apples', 'cheese'])}.",
            f"It took {c} hours to get there, and {n} was {r.choice(feel)}.",
            f"The {a} sang a song about {r.choice(things)}.",
        ]))
    s.append(f"In the end {n} felt {f2}.")
    s.append(r.choice(ends).format(n=n, a=a))
    return " ".join(s)

for i in range(2400):
    print(json.dumps({"text": story()}))
