"""Supervised baselines built with the same network builders as the agents:
XOR (Keras and NumPy), MNIST / Fashion-MNIST (MLP and CNN), and a digit
classifier trained from a folder of images plus a CSV of labels."""
