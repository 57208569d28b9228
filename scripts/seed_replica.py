"""A faithful replica of the seed notebook's training loop: the speed and learning baseline.

Kept in scripts/ as the reference; the package never imports it. It is the
notebook's code (``../shared/seed/per_notebook.txt``) with only these changes:

* gymnasium's CartPole-v1 with a 200-step limit instead of gym's CartPole-v0
  (same dynamics, same limit; ``done = terminated or truncated``);
* one seed feeds ``random``, NumPy's global RNG, torch and ``env.reset``;
* ``max_env_steps`` stops the run mid-episode after a fixed number of env
  steps (for the throughput benchmark); ``log`` replaces the per-episode print;
* after the 10th consecutive success the notebook runs one more full episode
  before its ``break``; the replica stops right away (the solve index is the same);
* two latent crashes of the notebook are guarded instead of raised: a batch
  whose 32 next states are all terminal (``torch.cat([])``) skips the update,
  and a scan that runs off the end through float rounding stops at the last slot.

Everything that costs time is kept: the list of namedtuples of single-row
tensors, ``torch.cat`` of 32 rows per step, ``np.sum`` over a Python list of
TD errors and the Python scan per step, and the forward pass over the whole
memory (rebuilt with ``torch.cat``) at every episode end.
"""

from __future__ import annotations

import random
import time
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim

Transition = namedtuple("Transition", ("state", "action", "next_state", "reward"))

GAMMA = 0.99
NUM_STEPS = 200
NUM_EPISODES = 500
BATCH_SIZE = 32
CAPACITY = 10000
TD_ERROR_EPSILON = 0.0001


class ReplayMemory:
    def __init__(self, capacity):
        self.capacity = capacity
        self.memory = []
        self.index = 0

    def push(self, state, action, next_state, reward):
        if len(self.memory) < self.capacity:
            self.memory.append(None)
        self.memory[self.index] = Transition(state, action, next_state, reward)
        self.index = (self.index + 1) % self.capacity

    def sample(self, batch_size):
        return random.sample(self.memory, batch_size)

    def __len__(self):
        return len(self.memory)


class TDerrorMemory:
    def __init__(self, capacity):
        self.capacity = capacity
        self.memory = []
        self.index = 0

    def push(self, td_error):
        if len(self.memory) < self.capacity:
            self.memory.append(None)
        self.memory[self.index] = td_error
        self.index = (self.index + 1) % self.capacity

    def __len__(self):
        return len(self.memory)

    def get_prioritized_indexes(self, batch_size):
        sum_absolute_td_error = np.sum(np.absolute(self.memory))
        sum_absolute_td_error += TD_ERROR_EPSILON * len(self.memory)
        rand_list = np.random.uniform(0, sum_absolute_td_error, batch_size)
        rand_list = np.sort(rand_list)
        indexes = []
        idx = 0
        tmp_sum_absolute_td_error = 0
        n = len(self.memory)
        for rand_num in rand_list:
            # guard (see module doc): the notebook would raise IndexError here
            while tmp_sum_absolute_td_error < rand_num and idx < n:
                tmp_sum_absolute_td_error += abs(self.memory[idx]) + TD_ERROR_EPSILON
                idx += 1
            if idx >= n:
                idx = n - 1
            indexes.append(idx)
        return indexes

    def update_td_error(self, updated_td_errors):
        self.memory = updated_td_errors


class Net(nn.Module):
    def __init__(self, n_in, n_mid, n_out):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_mid)
        self.fc2 = nn.Linear(n_mid, n_mid)
        self.fc3 = nn.Linear(n_mid, n_mid)
        self.fc4_adv = nn.Linear(n_mid, n_out)
        self.fc4_v = nn.Linear(n_mid, 1)

    def forward(self, x):
        h1 = F.relu(self.fc1(x))
        h2 = F.relu(self.fc2(h1))
        h3 = F.relu(self.fc3(h2))
        adv = self.fc4_adv(h3)
        val = self.fc4_v(h3).expand(-1, adv.size(1))
        return val + adv - adv.mean(1, keepdim=True).expand(-1, adv.size(1))


class Brain:
    def __init__(self, num_states, num_actions):
        self.num_actions = num_actions
        self.memory = ReplayMemory(CAPACITY)
        n_in, n_mid, n_out = num_states, 32, num_actions
        self.main_q_network = Net(n_in, n_mid, n_out)
        self.target_q_network = Net(n_in, n_mid, n_out)
        self.optimizer = optim.Adam(self.main_q_network.parameters(), lr=0.0001)
        self.td_error_memory = TDerrorMemory(CAPACITY)

    def replay(self, episode):
        if len(self.memory) < BATCH_SIZE:
            return
        (self.batch, self.state_batch, self.action_batch, self.reward_batch, self.non_final_next_states) = (
            self.make_minibatch(episode)
        )
        if self.non_final_next_states is None:  # guard (see module doc)
            return
        self.expected_state_action_values = self.get_expected_state_action_values()
        self.update_main_q_network()

    def decide_action(self, state, episode):
        epsilon = 0.5 * (1 / (episode + 1))
        if epsilon < np.random.uniform(0, 1):
            self.main_q_network.eval()
            with torch.no_grad():
                action = self.main_q_network(state).max(axis=1)[1].reshape(1, 1)
        else:
            action = torch.LongTensor([[random.randrange(self.num_actions)]])
        return action

    def make_minibatch(self, episode):
        if episode < 30:
            transitions = self.memory.sample(BATCH_SIZE)
        else:
            indexes = self.td_error_memory.get_prioritized_indexes(BATCH_SIZE)
            transitions = [self.memory.memory[n] for n in indexes]
        batch = Transition(*zip(*transitions))
        state_batch = torch.cat(batch.state)
        action_batch = torch.cat(batch.action)
        reward_batch = torch.cat(batch.reward)
        non_final = [s for s in batch.next_state if s is not None]
        non_final_next_states = torch.cat(non_final) if non_final else None
        return batch, state_batch, action_batch, reward_batch, non_final_next_states

    def get_expected_state_action_values(self):
        self.main_q_network.eval()
        self.target_q_network.eval()
        self.state_action_values = self.main_q_network(self.state_batch).gather(1, self.action_batch)
        non_final_mask = torch.BoolTensor(tuple(map(lambda s: s is not None, self.batch.next_state)))
        next_state_values = torch.zeros(BATCH_SIZE)
        a_m = torch.zeros(BATCH_SIZE).type(torch.LongTensor)
        a_m[non_final_mask] = self.main_q_network(self.non_final_next_states).detach().max(axis=1)[1]
        a_m_non_final_next_states = a_m[non_final_mask].reshape(-1, 1)
        next_state_values[non_final_mask] = (
            self.target_q_network(self.non_final_next_states).gather(1, a_m_non_final_next_states).detach().squeeze()
        )
        return self.reward_batch + GAMMA * next_state_values

    def update_main_q_network(self):
        self.main_q_network.train()
        loss = F.smooth_l1_loss(self.state_action_values, self.expected_state_action_values.unsqueeze(1))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def update_target_q_network(self):
        self.target_q_network.load_state_dict(self.main_q_network.state_dict())

    def update_td_error_memory(self):
        self.main_q_network.eval()
        self.target_q_network.eval()
        transitions = self.memory.memory
        batch = Transition(*zip(*transitions))
        state_batch = torch.cat(batch.state)
        action_batch = torch.cat(batch.action)
        reward_batch = torch.cat(batch.reward)
        non_final_next_states = torch.cat([s for s in batch.next_state if s is not None])
        state_action_values = self.main_q_network(state_batch).gather(1, action_batch)
        non_final_mask = torch.BoolTensor(tuple(map(lambda s: s is not None, batch.next_state)))
        next_state_values = torch.zeros(len(self.memory))
        a_m = torch.zeros(len(self.memory)).type(torch.LongTensor)
        a_m[non_final_mask] = self.main_q_network(non_final_next_states).detach().max(axis=1)[1]
        a_m_non_final_next_states = a_m[non_final_mask].reshape(-1, 1)
        next_state_values[non_final_mask] = (
            self.target_q_network(non_final_next_states).gather(1, a_m_non_final_next_states).detach().squeeze()
        )
        td_errors = (reward_batch + GAMMA * next_state_values) - state_action_values.squeeze()
        self.td_error_memory.memory = td_errors.detach().numpy().tolist()


@dataclass
class ReplicaResult:
    solved_episode: int | None = None
    episodes: int = 0
    total_env_steps: int = 0
    wall_seconds: float = 0.0
    episode_lengths: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sps(self) -> float:
        return self.total_env_steps / self.wall_seconds if self.wall_seconds > 0 else 0.0


def run_replica(
    seed: int = 0,
    max_env_steps: int | None = None,
    max_episodes: int = NUM_EPISODES,
    log: Callable[[int, int], None] | None = None,
    stop_on_solve: bool = True,
) -> ReplicaResult:
    """The notebook's Environment.run(); returns episode lengths, solve index and wall time.

    ``timings`` splits the wall time as the notebook's own calls do:
    act (decide_action), env (env.step), update (replay: sampling, tensor
    assembly and the gradient step together, as the notebook interleaves
    them) and refresh (update_td_error_memory). ``stop_on_solve=False``
    keeps training after the solve (fixed-budget benchmarks).
    """
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make("CartPole-v1", max_episode_steps=NUM_STEPS)
    brain = Brain(env.observation_space.shape[0], env.action_space.n)
    res = ReplicaResult()
    tm = {"act": 0.0, "env": 0.0, "update": 0.0, "refresh": 0.0}
    pc = time.perf_counter
    complete_episodes = 0
    t_start = pc()
    for episode in range(max_episodes):
        observation, _ = env.reset(seed=seed if episode == 0 else None)
        state = torch.unsqueeze(torch.from_numpy(observation).type(torch.FloatTensor), 0)
        stop = False
        for step in range(NUM_STEPS):
            t0 = pc()
            action = brain.decide_action(state, episode)
            t1 = pc()
            observation_next, _, terminated, truncated, _ = env.step(action.item())
            t2 = pc()
            done = terminated or truncated
            if done:
                state_next = None
                if step < 195:
                    reward = torch.FloatTensor([-1.0])
                    complete_episodes = 0
                else:
                    reward = torch.FloatTensor([1.0])
                    complete_episodes += 1
            else:
                reward = torch.FloatTensor([0.0])
                state_next = torch.unsqueeze(torch.from_numpy(observation_next).type(torch.FloatTensor), 0)
            brain.memory.push(state, action, state_next, reward)
            brain.td_error_memory.push(0)
            brain.replay(episode)
            t3 = pc()
            tm["act"] += t1 - t0
            tm["env"] += t2 - t1
            tm["update"] += t3 - t2
            state = state_next
            res.total_env_steps += 1
            if max_env_steps is not None and res.total_env_steps >= max_env_steps:
                stop = True
                break
            if done:
                res.episode_lengths.append(step + 1)
                if log is not None:
                    log(episode, step + 1)
                t4 = pc()
                brain.update_td_error_memory()
                tm["refresh"] += pc() - t4
                if episode % 2 == 0:
                    brain.update_target_q_network()
                break
        res.episodes = episode + 1
        if stop:
            break
        if complete_episodes >= 10 and res.solved_episode is None:
            res.solved_episode = episode
            if stop_on_solve:
                break
    res.wall_seconds = pc() - t_start
    res.timings = tm
    env.close()
    return res


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many env steps")
    a = ap.parse_args()
    r = run_replica(a.seed, a.steps, log=lambda e, n: print(f"episode {e}: {n} steps"))
    print(
        f"solved_episode={r.solved_episode} steps={r.total_env_steps} "
        f"wall={r.wall_seconds:.1f}s sps={r.sps:.0f} timings={ {k: round(v, 2) for k, v in r.timings.items()} }"
    )
