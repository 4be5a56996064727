"""The tutorial's own network classes, copied as written there: the oracles several tests share."""

from __future__ import annotations

from torch import nn


class MyNeuralNet(nn.Module):
    """§2.1's network."""

    def __init__(self):
        super().__init__()
        self.input_to_hidden_layer = nn.Linear(2, 8)
        self.hidden_layer_activation = nn.ReLU()
        self.hidden_to_output_layer = nn.Linear(8, 1)

    def forward(self, x):
        x = self.input_to_hidden_layer(x)
        x = self.hidden_layer_activation(x)
        x = self.hidden_to_output_layer(x)
        return x


class TutorialNet(nn.Module):
    """§2.3's network: forward returns (hidden, output)."""

    def __init__(self):
        super().__init__()
        self.input_to_hidden_layer = nn.Linear(2, 8)
        self.hidden_layer_activation = nn.ReLU()
        self.hidden_to_output_layer = nn.Linear(8, 1)

    def forward(self, x):
        hidden_output = self.input_to_hidden_layer(x)
        hidden_output = self.hidden_layer_activation(hidden_output)
        return hidden_output, self.hidden_to_output_layer(hidden_output)
